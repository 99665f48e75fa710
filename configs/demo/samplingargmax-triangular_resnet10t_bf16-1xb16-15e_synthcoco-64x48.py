# samplingargmax-triangular head on ResNet-10t, SynthCOCO demo set 64x48, 15 epochs in
# bfloat16 with a channels_last backbone, on a 2-core CPU.
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/synthcoco-demo-64x48.py",
    "../_base_/models/topdown_resnet10t.py",
    "../_base_/schedules/adamw-cosine-bf16_15e.py",
]

# the head block: the only difference between the configs in this folder
model = dict(
    memory_format="channels_last",
    head=dict(
        type="SamplingArgmaxHead",
        num_keypoints=17,
        deconv_channels=(64, 64, 64),
        basis="triangular",
        num_samples=30,
    ),
)
