# Synthetic benchmark: ipr3d head on ResNet-10t,
# SynthH36M benchmark set (100 frames/subject) 64x64, 20 epochs, one CPU.
_base_ = [
    "../../_base_/default_runtime.py",
    "../../_base_/datasets/synthh36m-bench-64x64.py",
    "../../_base_/models/topdown3d_resnet10t.py",
    "../../_base_/schedules/adamw-cosine_20e.py",
]

# the head block: the only difference between the configs in this folder
model = dict(
    head=dict(
        type="SoftArgmaxHead",
        num_keypoints=17,
        num_dims=3,
        depth_bins=32,
        deconv_channels=(64, 64, 64),
        loss="l1",
    ),
)
