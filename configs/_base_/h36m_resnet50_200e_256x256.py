# Human3.6M image-based 3-D, protocol 2 (train S1,5,6,7,8 / test S9,11), 256x256, ResNet-50,
# 200 epochs (the official RLE schedule: Adam 1e-3, batch 32 per GPU). Head configs add
# `model.head` with num_dims=3.
data_root = "data/h36m/"
input_size = (256, 256)
num_keypoints = 17

model = dict(
    type="TopdownPoseEstimator",
    data_preprocessor=dict(
        type="ImgDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
    ),
    backbone=dict(type="TimmBackbone", model_name="resnet50", pretrained=None),
    test_cfg=dict(flip_test=True, depth_scale=2000.0),
)

train_pipeline = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale", padding=1.0),
    dict(type="RandomFlip", prob=0.5),
    dict(type="RandomBBoxTransform", scale_factor=(0.75, 1.25), rotate_factor=30.0),
    dict(type="TopdownAffine", input_size=input_size),
    dict(type="EncodeKeypoints", num_dims=3),
    dict(type="PackPoseInputs"),
]
val_pipeline = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale", padding=1.0),
    dict(type="TopdownAffine", input_size=input_size),
    dict(type="EncodeKeypoints", num_dims=3),
    dict(type="PackPoseInputs"),
]

train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type="H36MDataset",
        data_root=data_root,
        ann_file="annotation_body3d/fps50/h36m_train.npz",
        camera_param_file="annotation_body3d/cameras.pkl",
        data_prefix=dict(img="images/"),
        split="train",
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type="H36MDataset",
        data_root=data_root,
        ann_file="annotation_body3d/fps50/h36m_test.npz",
        camera_param_file="annotation_body3d/cameras.pkl",
        data_prefix=dict(img="images/"),
        split="test",
        test_mode=True,
        pipeline=val_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="H36MMetric")
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-3), clip_grad=dict(max_norm=35.0))
param_scheduler = [
    dict(type="MultiStepLR", begin=0, end=200, milestones=[90, 120], gamma=0.1, by_epoch=True),
]
train_cfg = dict(by_epoch=True, max_epochs=200, val_interval=10)
val_cfg = dict()
test_cfg = dict()
