# Runtime shared by every config: scope, hooks, logging, environment (CPU or GPU).
default_scope = "rle"

default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="AtomicCheckpointHook", interval=10, max_keep_ckpts=3),  # rle.checkpoint
    sampler_seed=dict(type="DistSamplerSeedHook"),
)
custom_hooks = [
    dict(type="NonFiniteLossHook"),  # stop with the name of the component that went NaN
    dict(type="SetEpochHook"),  # epoch-dependent heads (sampling-argmax temperature)
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
    dist_cfg=dict(backend="gloo"),  # tools/ create the group (NCCL when CUDA is present)
)
log_processor = dict(type="LogProcessor", window_size=50, by_epoch=True)
log_level = "INFO"
vis_backends = [dict(type="LocalVisBackend")]  # add dict(type="TensorboardVisBackend")
visualizer = dict(type="Visualizer", vis_backends=vis_backends)
load_from = None
resume = False
randomness = dict(seed=0)
