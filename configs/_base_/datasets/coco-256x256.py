# coco-256x192.py at 256x256 crops (MMPose's IPR and DSNT COCO models): the base's pipelines
# with the crop size changed.
_base_ = ["coco-256x192.py"]

input_size = (256, 256)  # (w, h)
resize = dict(TopdownAffine=dict(input_size=input_size))
train_pipeline = [dict(t, **resize.get(t.type, {})) for t in _base_.train_pipeline]
val_pipeline = [dict(t, **resize.get(t.type, {})) for t in _base_.val_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
del resize  # a helper, not a config key
