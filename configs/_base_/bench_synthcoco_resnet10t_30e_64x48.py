# The synthetic accuracy benchmark, 2-D: the demo's kind of SynthCOCO (one person per image, no
# clutter, facing the camera within 45 degrees, upright) but its own seed, a 500-image val split
# and a schedule 2.5x the demo's: ResNet-10t from scratch at 64x48, 30 epochs of 188 iterations
# (about 6 minutes per head on a 2-core CPU). Head configs in configs/benchmark/synthcoco/ add
# `model.head`; `python tools/compare.py configs/benchmark/synthcoco` runs them all.
data_root = "data/synth_coco_bench"
synth_cfg = dict(
    num_train_images=3000,
    num_val_images=500,
    image_size=(128, 96),
    seed=1,
    person_height=(0.6, 0.95),
    max_people=1,
    clutter=0.0,
    max_yaw=45.0,
    roll=0.0,
)
input_size = (48, 64)  # (w, h)
num_keypoints = 17
max_epochs = 30

model = dict(
    type="TopdownPoseEstimator",
    data_preprocessor=dict(
        type="ImgDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
    ),
    backbone=dict(type="TimmBackbone", model_name="resnet10t", pretrained=None),
    test_cfg=dict(flip_test=True),
)

train_pipeline = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale", padding=1.25),
    dict(type="RandomFlip", prob=0.5),
    dict(type="RandomBBoxTransform", scale_factor=(0.85, 1.15), rotate_factor=10.0),
    dict(type="TopdownAffine", input_size=input_size),
    dict(type="EncodeKeypoints"),
    dict(type="PackPoseInputs"),
]
val_pipeline = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale", padding=1.25),
    dict(type="TopdownAffine", input_size=input_size),
    dict(type="EncodeKeypoints"),
    dict(type="PackPoseInputs"),
]

train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type="SynthCocoDataset",
        data_root=data_root,
        split="train",
        synth_cfg=synth_cfg,
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type="SynthCocoDataset",
        data_root=data_root,
        split="val",
        synth_cfg=synth_cfg,
        test_mode=True,
        pipeline=val_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(
    type="CocoKeypointMetric", ann_file=data_root + "/annotations/person_keypoints_val.json"
)
test_evaluator = val_evaluator

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
