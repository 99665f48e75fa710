# ipr3d head on ResNet-50, Human3.6M 256x256, 200 epochs (8 GPUs x 32).
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/h36m-256x256.py",
    "../_base_/models/topdown3d_resnet50.py",
    "../_base_/schedules/adam-step_200e.py",
]

# the head block: the only difference between the configs in this folder
model = dict(
    head=dict(type="SoftArgmaxHead", num_keypoints=17, num_dims=3, depth_bins=64, loss="l1"),
)
