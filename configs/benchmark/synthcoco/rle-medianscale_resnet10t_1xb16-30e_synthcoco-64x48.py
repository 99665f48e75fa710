# Synthetic benchmark: rle head with the flow's density pinned to a unit Gaussian's median |x|
# (RealNVP(scale="median"): sigma on the scale of the error) on ResNet-10t,
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
        type="RLEHead",
        num_keypoints=17,
        loss_cfg=dict(variant="official", q="laplace", flow_cfg=dict(scale="median")),
    ),
)
