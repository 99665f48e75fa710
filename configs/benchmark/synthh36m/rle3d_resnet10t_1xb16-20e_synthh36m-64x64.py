# Synthetic benchmark: rle3d head on ResNet-18,
# SynthH36M (300 frames/subject) 128x128, 60 epochs, one CPU.
_base_ = ["../../_base_/default_runtime.py", "../../_base_/bench_synthh36m_resnet18_60e_128x128.py"]

# the head block: the only difference between the configs in this folder
model = dict(
    head=dict(type="RLEHead", num_keypoints=17, num_dims=3, loss_cfg=dict(variant="official")),
)
