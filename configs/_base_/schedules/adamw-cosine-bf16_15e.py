# `make demo`: adamw-cosine_30e.py over 15 epochs of 188 iterations of 16 crops, trained under
# bfloat16 autocast (rle.amp.MixedPrecisionOptimWrapper; the heads' output layers, decoders and
# losses stay float32). With the backbone in channels_last (the demo's model configs) a demo
# step is 1.24x-1.32x faster than in float32 on this CPU (benchmarks/bench_training.py). 10
# epochs took 15 min and cost the RLE head 0.1 AP (README "The demo"), so it stays at 15.
# `make demo` trains two heads at a time (two 1-thread processes get ~1.3x the iterations of
# one 2-thread one).
# Train in float32 instead: --cfg-options optim_wrapper.dtype=float32 model.memory_format=contiguous
_base_ = ["adamw-cosine_30e.py"]

# lr: 2e-3, 4e-3 and 6e-3 give the 15-epoch RLE run the same AP within the seed's spread
# (0.61-0.65; benchmarks/demo_lr_sweep.py). fused=True: clipping + the fused CPU AdamW step take
# 5.8 ms instead of 24.0 ms with the per-tensor loop, next to 85 ms of forward + backward
# (benchmarks/bench_optimizer.py).
optim_wrapper = dict(
    type="MixedPrecisionOptimWrapper", dtype="bfloat16", optimizer=dict(lr=4e-3, fused=True)
)

max_epochs = 15
warmup, cosine = _base_.param_scheduler
param_scheduler = [warmup, dict(cosine, end=max_epochs, T_max=max_epochs)]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
del warmup, cosine  # helpers, not config keys
