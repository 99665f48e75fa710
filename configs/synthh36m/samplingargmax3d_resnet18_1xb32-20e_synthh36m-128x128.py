# samplingargmax3d head on ResNet-18, SynthH36M 128x128, 20 epochs on one CPU.
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/synthh36m-128x128.py",
    "../_base_/models/topdown3d_resnet18.py",
    "../_base_/schedules/adam-step_20e.py",
]

# the head block: the only difference between the configs in this folder
model = dict(
    head=dict(
        type="SamplingArgmaxHead",
        num_keypoints=17,
        num_dims=3,
        depth_bins=32,
        deconv_channels=(64, 64, 64),
        basis="triangular",
        num_samples=10,
    ),
)
