# `make demo`: adamw-cosine_30e.py over 15 epochs of 188 iterations of 16 crops: 5-6 minutes of
# training per head in one thread; `make demo` trains two heads at a time (two 1-thread
# processes get ~1.3x the iterations of one 2-thread process).
_base_ = ["adamw-cosine_30e.py"]

# lr: 2e-3, 4e-3 and 6e-3 give the RLE run the same AP within the seed's spread (0.61-0.65;
# benchmarks/demo_lr_sweep.py). fused=True: clipping + the fused CPU AdamW step take 5.8 ms
# instead of 24.0 ms with the per-tensor loop, next to 85 ms of forward + backward
# (benchmarks/bench_optimizer.py).
optim_wrapper = dict(optimizer=dict(lr=4e-3, fused=True))

max_epochs = 15
warmup, cosine = _base_.param_scheduler
param_scheduler = [warmup, dict(cosine, end=max_epochs, T_max=max_epochs)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
del warmup, cosine  # helpers, not config keys
