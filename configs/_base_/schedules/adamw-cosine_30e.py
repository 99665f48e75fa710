# The synthetic benchmark's schedule (2-D): AdamW 2e-3, weight decay 1e-4, gradients clipped at
# norm 35, a 50-iteration warm-up, then cosine to 1e-5 over 30 epochs (188 iterations each at
# batch 16: about 6 minutes per head on a 2-core CPU). Shorter schedules override max_epochs
# and the two entries that use it.
max_epochs = 30

optim_wrapper = dict(
    optimizer=dict(type="AdamW", lr=2e-3, weight_decay=1e-4), clip_grad=dict(max_norm=35.0)
)
param_scheduler = [
    dict(type="LinearLR", begin=0, end=50, start_factor=0.01, by_epoch=False),
    dict(
        type="CosineAnnealingLR",
        begin=0,
        end=max_epochs,
        T_max=max_epochs,
        eta_min=1e-5,
        by_epoch=True,
        convert_to_iter_based=True,
    ),
]
# validation only at the end (tools/compare.py evaluates every run anyway)
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict()
test_cfg = dict()
