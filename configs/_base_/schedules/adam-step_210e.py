# MMPose's COCO schedule for its RLE and IPR/DSNT models: Adam 1e-3 after a 500-iteration
# warm-up, x0.1 at epochs 170 and 200, 210 epochs, validation every 10; the lr is for 8 GPUs x 64
# (auto_scale_lr).
optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-3))
param_scheduler = [
    dict(type="LinearLR", begin=0, end=500, start_factor=0.001, by_epoch=False),
    dict(type="MultiStepLR", begin=0, end=210, milestones=[170, 200], gamma=0.1, by_epoch=True),
]
train_cfg = dict(by_epoch=True, max_epochs=210, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=512)
