# MMPose's published RLE model (td-reg_res50_rle-8xb64-210e_coco-256x192): ResNet-50, global
# average pooling, one fc for mu and sigma, MMPose's RLE loss, in MMPose's pixel convention.
# For checkpoints converted with `tools/convert_checkpoint.py SRC DST --from mmpose` (whose own
# metadata makes this config optional: `tools/test.py DST`); training with it reproduces
# MMPose's setting.
_base_ = [
    "../../_base_/default_runtime.py",
    "../../_base_/datasets/coco-256x192.py",
    "../../_base_/models/topdown_resnet50.py",
    "../../_base_/schedules/adam-step_210e.py",
]

# MMPose's crop geometry and decoding, set once here: datasets, model and head follow
convention = "mmpose"
model = dict(
    head=dict(
        type="RLEHead", num_keypoints=17, normalize_feats=False, loss_cfg=dict(variant="mmpose")
    ),
    test_cfg=dict(flip_test=True, shift_coords=True),
)
train_dataloader = dict(batch_size=64)
val_evaluator = dict(score_mode="bbox_rle")
test_evaluator = val_evaluator
