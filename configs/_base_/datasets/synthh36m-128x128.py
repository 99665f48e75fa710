# SynthH36M (generated on first use, in the MMPose npz layout; train S1,5,6,7,8 / test S9,11),
# 128x128: the small CPU 3-D setting. SynthCOCO's loaders and augmentation (synthcoco-128x96.py:
# 2 workers, val batches of 64, scale 0.8-1.2, rotation up to 20 degrees) made 3-D as in
# h36m-256x256.py: the crop keeps the whole box (padding 1.0), 3-D targets, H36MMetric.
_base_ = ["synthcoco-128x96.py"]

data_root = "data/synth_h36m"
synth_cfg = dict(_delete_=True, frames_per_subject=100, image_size=(256, 256), seed=0)  # not merged
input_size = (128, 128)

# the base's pipelines with these arguments changed, by transform type
changes = dict(
    GetBBoxCenterScale=dict(padding=1.0),
    TopdownAffine=dict(input_size=input_size),
    EncodeKeypoints=dict(num_dims=3),
)
train_pipeline = [dict(t, **changes.get(t.type, {})) for t in _base_.train_pipeline]
val_pipeline = [dict(t, **changes.get(t.type, {})) for t in _base_.val_pipeline]

# SynthCOCO's datasets with these keys changed (synth_cfg replaced: `_delete_` above)
dataset = dict(type="SynthH36MDataset", data_root=data_root, layout="npz", synth_cfg=synth_cfg)
train_dataloader = dict(dataset=dict(dataset, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(dataset, split="test", pipeline=val_pipeline))
test_dataloader = val_dataloader
# the calibration split (synthcoco-128x96.py): a separate generation, seed 100 (other bodies and
# poses than train's and test's seed 0), subjects S1 and S5 with 40 frames each: 320 images in
# a few seconds, read as its "train" split
calib_dataloader = dict(
    dataset=dict(
        dataset,
        _delete_=True,
        data_root=data_root + "_calib",
        split="train",
        synth_cfg=dict(
            frames_per_subject=40, image_size=(256, 256), seed=100, subjects=["S1", "S5"]
        ),
        test_mode=True,
        pipeline=val_pipeline,
    )
)
val_evaluator = dict(_delete_=True, type="H36MMetric")
test_evaluator = val_evaluator
del changes, dataset  # helpers, not config keys
