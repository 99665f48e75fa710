# Synthetic benchmark: samplingargmax-triangular head on ResNet-18,
# SynthCOCO (4000 images) 128x96, 60 epochs, one CPU.
_base_ = ["../../_base_/default_runtime.py", "../../_base_/bench_synthcoco_resnet18_60e_128x96.py"]

# the head block: the only difference between the configs in this folder
model = dict(
    head=dict(
        type="SamplingArgmaxHead",
        num_keypoints=17,
        deconv_channels=(64, 64, 64),
        basis="triangular",
        num_samples=30,
    ),
)
