# MMPose's published DSNT model (ipr_res50_dsnt-8xb64-210e_coco-256x256): ResNet-50, SimpleBaseline
# deconvolutions, DSNT on MMPose's grid with its keypoint scores (all 1), in MMPose's pixel
# convention. For checkpoints converted with `tools/convert_checkpoint.py SRC DST --from mmpose`.
# Inference equals MMPose's; the training loss is this project's DSNT (MMPose sums its JS term
# over pixels, see DSNTHead).
_base_ = [
    "../../_base_/default_runtime.py",
    "../../_base_/datasets/coco-256x256.py",
    "../../_base_/models/topdown_resnet50.py",
    "../../_base_/schedules/adam-step_210e.py",
]

convention = "mmpose"
model = dict(
    head=dict(type="DSNTHead", num_keypoints=17, beta=1.0, keypoint_scores="one"),
    test_cfg=dict(flip_test=True, shift_coords=True),
)
train_dataloader = dict(batch_size=64)
