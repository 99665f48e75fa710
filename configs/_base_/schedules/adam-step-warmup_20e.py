# adam-step_20e.py after a 100-iteration linear warm-up (SynthCOCO 128x96).
_base_ = ["adam-step_20e.py"]

param_scheduler = [
    dict(type="LinearLR", begin=0, end=100, start_factor=0.01, by_epoch=False),
    *_base_.param_scheduler,
]
