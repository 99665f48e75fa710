# samplingargmax-triangular head with a learned width per keypoint (initialised at the fixed
# triangular basis's, 1 bin; trained by its own negative log-likelihood, width_loss="nll", as
# trained through the samples it collapses) on ResNet-18, SynthCOCO 128x96, 20 epochs, one CPU.
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/synthcoco-128x96.py",
    "../_base_/models/topdown_resnet18.py",
    "../_base_/schedules/adam-step-warmup_20e.py",
]

# the head block: the only difference between the configs in this folder
model = dict(
    head=dict(
        type="SamplingArgmaxHead",
        num_keypoints=17,
        deconv_channels=(64, 64, 64),
        basis="triangular",
        num_samples=30,
        learn_width="keypoint",
        width_loss="nll",
    ),
)
