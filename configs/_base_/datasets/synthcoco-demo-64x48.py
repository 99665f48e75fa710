# `make demo`: an easier SynthCOCO (one large person per image facing the camera within 45
# degrees, upright, no background clutter or occluders), top-down 64x48, milder augmentation
# (scale 0.85-1.15, rotation up to 10 degrees); otherwise as synthcoco-128x96.py. Batches of 16
# crops (batch 16 learned more per second here than batch 32). Data loading in the main process
# (num_workers=0): the 64x48 pipeline makes ~3000 crops/s, so worker processes would only
# compete with the model for the 2 cores.
_base_ = ["synthcoco-128x96.py"]

data_root = "data/synth_coco_demo"
synth_cfg = dict(
    num_train_images=3000,
    num_val_images=200,
    image_size=(128, 96),
    seed=0,
    person_height=(0.6, 0.95),
    max_people=1,
    clutter=0.0,
    # facing the camera: with any yaw, a left/right swap (the figures' sides differ only by a
    # shade) stays the main error after minutes of training; see README "The demo"
    max_yaw=45.0,
    roll=0.0,
)
input_size = (48, 64)  # (w, h)

# the base's pipelines with these arguments changed, by transform type
changes = dict(
    RandomBBoxTransform=dict(scale_factor=(0.85, 1.15), rotate_factor=10.0),
    TopdownAffine=dict(input_size=input_size),
)
train_pipeline = [dict(t, **changes.get(t.type, {})) for t in _base_.train_pipeline]
val_pipeline = [dict(t, **changes.get(t.type, {})) for t in _base_.val_pipeline]

# the demo's set, batches of 16 loaded in the main process (see above)
dataset = dict(data_root=data_root, synth_cfg=synth_cfg)
in_process = dict(num_workers=0, persistent_workers=False)
train_dataloader = dict(batch_size=16, **in_process, dataset=dict(dataset, pipeline=train_pipeline))
val_dataloader = dict(**in_process, dataset=dict(dataset, pipeline=val_pipeline))
test_dataloader = val_dataloader
# the calibration split (synthcoco-128x96.py): the demo's kind of people, seed 100, 1000 images
# of one person each. Errors are correlated within a person, so the split's noise is that of
# its instances: with 300 the demo's IPR per-level coverage at 68 % was 0.72 on val, with 1000
# 0.70 (the same checkpoints; README, Uncertainty); generating and predicting it takes ~1 min
calib_dataloader = dict(
    dataset=dict(
        data_root=data_root + "_calib",
        synth_cfg=dict(synth_cfg, num_train_images=1000, num_val_images=1, seed=100),
        pipeline=val_pipeline,
    )
)
val_evaluator = dict(ann_file=data_root + "/annotations/person_keypoints_val.json")
test_evaluator = val_evaluator
del changes, dataset, in_process  # helpers, not config keys
