# Synthetic benchmark: samplingargmax-triangular head with a learned width per keypoint
# (initialised at the fixed triangular basis's, 1 bin) trained by its own negative
# log-likelihood (width_loss="nll"; the samples use it detached) on ResNet-10t,
# SynthCOCO benchmark set (3000 train / 500 val images) 64x48, 30 epochs, one CPU.
_base_ = [
    "../../_base_/default_runtime.py",
    "../../_base_/datasets/synthcoco-bench-64x48.py",
    "../../_base_/models/topdown_resnet10t.py",
    "../../_base_/schedules/adamw-cosine_30e.py",
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
