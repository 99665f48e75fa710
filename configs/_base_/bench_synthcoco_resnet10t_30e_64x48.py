# The synthetic accuracy benchmark, 2-D: a larger SynthCOCO (4000 train / 500 val images, its own
# seed), top-down 128x96, ResNet-18 from scratch, 60 epochs. Head configs add `model.head`.
data_root = "data/synth_coco_bench"
synth_cfg = dict(num_train_images=4000, num_val_images=500, image_size=(256, 192), seed=1)
input_size = (96, 128)  # (w, h)
num_keypoints = 17

model = dict(
    type="TopdownPoseEstimator",
    data_preprocessor=dict(
        type="ImgDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
    ),
    backbone=dict(type="TimmBackbone", model_name="resnet18", pretrained=None),
    test_cfg=dict(flip_test=True),
)

train_pipeline = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale", padding=1.25),
    dict(type="RandomFlip", prob=0.5),
    dict(type="RandomBBoxTransform", scale_factor=(0.8, 1.2), rotate_factor=20.0),
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
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
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
    num_workers=2,
    persistent_workers=True,
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

optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-3), clip_grad=dict(max_norm=35.0))
param_scheduler = [
    dict(type="LinearLR", begin=0, end=100, start_factor=0.01, by_epoch=False),
    dict(type="MultiStepLR", begin=0, end=60, milestones=[45, 55], gamma=0.1, by_epoch=True),
]
train_cfg = dict(by_epoch=True, max_epochs=60, val_interval=10)
val_cfg = dict()
test_cfg = dict()
