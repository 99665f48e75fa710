# The official RLE Human3.6M schedule: Adam 1e-3 with gradients clipped at norm 35, x0.1 at
# epochs 90 and 120, 200 epochs, validation every 10.
optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-3), clip_grad=dict(max_norm=35.0))
param_scheduler = [
    dict(type="MultiStepLR", begin=0, end=200, milestones=[90, 120], gamma=0.1, by_epoch=True),
]
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=10)
val_cfg = dict()
test_cfg = dict()
