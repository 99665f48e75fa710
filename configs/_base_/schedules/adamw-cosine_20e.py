# adamw-cosine_30e.py over 20 epochs: the synthetic benchmark's 3-D schedule (125 iterations per
# epoch at batch 16: about 4 minutes per head on a 2-core CPU).
_base_ = ["adamw-cosine_30e.py"]

max_epochs = 20
warmup, cosine = _base_.param_scheduler
param_scheduler = [warmup, dict(cosine, end=max_epochs, T_max=max_epochs)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
del warmup, cosine  # helpers, not config keys
