# dsnt head on ResNet-50, COCO 256x192, 270 epochs (8 GPUs x 32).
_base_ = ["../_base_/default_runtime.py", "../_base_/coco_resnet50_270e_256x192.py"]

# the head block: the only difference between the configs in this folder
model = dict(
    head=dict(type="DSNTHead", num_keypoints=17, reg="js", sigma_t=1.0),
)
