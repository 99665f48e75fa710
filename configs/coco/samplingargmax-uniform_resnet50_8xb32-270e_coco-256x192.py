# samplingargmax-uniform head on ResNet-50, COCO 256x192, 270 epochs (8 GPUs x 32).
_base_ = [
    "../_base_/default_runtime.py",
    "../_base_/datasets/coco-256x192.py",
    "../_base_/models/topdown_resnet50.py",
    "../_base_/schedules/adam-step_270e.py",
]

# the head block: the only difference between the configs in this folder
model = dict(
    head=dict(type="SamplingArgmaxHead", num_keypoints=17, basis="uniform", num_samples=30),
)
