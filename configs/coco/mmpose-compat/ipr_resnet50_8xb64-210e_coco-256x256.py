# MMPose's published IPR model (ipr_res50_8xb64-210e_coco-256x256): ResNet-50, SimpleBaseline
# deconvolutions, soft-argmax on MMPose's grid (bin j at crop pixel j * stride, set by the
# convention) with its keypoint scores (all 1), in MMPose's pixel convention. For checkpoints
# converted with `tools/convert_checkpoint.py SRC DST --from mmpose`.
_base_ = [
    "../../_base_/default_runtime.py",
    "../../_base_/datasets/coco-256x256.py",
    "../../_base_/models/topdown_resnet50.py",
    "../../_base_/schedules/adam-step_210e.py",
]

convention = "mmpose"
model = dict(
    head=dict(
        type="SoftArgmaxHead", num_keypoints=17, beta=1.0, loss="smooth_l1", keypoint_scores="one"
    ),  # fmt: skip
    test_cfg=dict(flip_test=True, shift_coords=True),
)
train_dataloader = dict(batch_size=64)
