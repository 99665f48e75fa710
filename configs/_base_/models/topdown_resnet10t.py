# topdown_resnet50.py on a ResNet-10t (trained from scratch in the demo and the benchmark).
_base_ = ["topdown_resnet50.py"]

model = dict(backbone=dict(model_name="resnet10t"))
