# adam-step_200e.py shortened for the small CPU settings: 20 epochs, x0.1 at epochs 15 and 18,
# validation every 5.
_base_ = ["adam-step_200e.py"]

param_scheduler = [
    dict(type="MultiStepLR", begin=0, end=20, milestones=[15, 18], gamma=0.1, by_epoch=True),
]
train_cfg = dict(max_epochs=20, val_interval=5)
