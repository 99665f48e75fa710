# topdown_resnet50.py on a ResNet-18 (trained from scratch in the small CPU settings).
_base_ = ["topdown_resnet50.py"]

model = dict(backbone=dict(model_name="resnet18"))
