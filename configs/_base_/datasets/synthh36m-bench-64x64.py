# The synthetic accuracy benchmark, 3-D: SynthH36M with 100 frames per subject and camera (its
# own seed; 2000 train images from S1/5/6/7/8, 800 test images from S9/11) rendered at 128x128,
# 64x64 crops; otherwise as synthh36m-128x128.py. Batches of 16 loaded in the main process, as
# in the demo (synthcoco-demo-64x48.py: workers would only compete with the model for the cores).
_base_ = ["synthh36m-128x128.py"]

data_root = "data/synth_h36m_bench"
synth_cfg = dict(image_size=(128, 128), seed=1)  # merged into the base's
input_size = (64, 64)

# the base's pipelines at 64x64
train_pipeline = [
    dict(t, input_size=input_size) if t.type == "TopdownAffine" else t
    for t in _base_.train_pipeline
]
val_pipeline = [
    dict(t, input_size=input_size) if t.type == "TopdownAffine" else t for t in _base_.val_pipeline
]

# the benchmark's set, batches of 16 loaded in the main process (as in the demo)
dataset = dict(data_root=data_root, synth_cfg=synth_cfg)
in_process = dict(num_workers=0, persistent_workers=False)
train_dataloader = dict(batch_size=16, **in_process, dataset=dict(dataset, pipeline=train_pipeline))
val_dataloader = dict(**in_process, dataset=dict(dataset, pipeline=val_pipeline))
test_dataloader = val_dataloader
# the calibration split (synthh36m-128x128.py) at 128x128, seed 101 (train and test: 1)
calib_dataloader = dict(
    dataset=dict(
        data_root=data_root + "_calib",
        synth_cfg=dict(image_size=(128, 128), seed=101),  # merged
        pipeline=val_pipeline,
    )
)
del dataset, in_process  # helpers, not config keys
