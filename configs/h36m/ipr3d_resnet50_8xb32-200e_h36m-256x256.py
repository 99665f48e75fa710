# ipr3d head on ResNet-50, Human3.6M 256x256, 200 epochs (8 GPUs x 32).
_base_ = ["../_base_/default_runtime.py", "../_base_/h36m_resnet50_200e_256x256.py"]

# the head block: the only difference between the configs in this folder
model = dict(
    head=dict(type="SoftArgmaxHead", num_keypoints=17, num_dims=3, depth_bins=64, loss="l1"),
)
