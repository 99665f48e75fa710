# COCO person keypoints, top-down 256x192, ResNet-50, 270 epochs (the RLE paper's schedule:
# Adam 1e-3, x0.1 at epochs 170 and 200, batch 32 per GPU on 8 GPUs). Head configs add `model.head`.
data_root = "data/coco/"
input_size = (192, 256)  # (w, h)
num_keypoints = 17

model = dict(
    type="TopdownPoseEstimator",
    data_preprocessor=dict(
        type="ImgDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
    ),
    # weights are never downloaded: set pretrained to a local ImageNet checkpoint file
    backbone=dict(type="TimmBackbone", model_name="resnet50", pretrained=None),
    test_cfg=dict(flip_test=True),
)

train_pipeline = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale", padding=1.25),
    dict(type="RandomFlip", prob=0.5),
    dict(type="RandomHalfBody", prob=0.3),
    dict(type="RandomBBoxTransform", scale_factor=(0.75, 1.25), rotate_factor=30.0),
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
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type="CocoKeypointDataset",
        data_root=data_root,
        ann_file="annotations/person_keypoints_train2017.json",
        data_prefix=dict(img="train2017/"),
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
        type="CocoKeypointDataset",
        data_root=data_root,
        ann_file="annotations/person_keypoints_val2017.json",
        data_prefix=dict(img="val2017/"),
        test_mode=True,
        bbox_file="person_detection_results/COCO_val2017_detections_AP_H_56_person.json",
        pipeline=val_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(
    type="CocoKeypointMetric", ann_file=data_root + "annotations/person_keypoints_val2017.json"
)
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-3))
param_scheduler = [
    dict(type="LinearLR", begin=0, end=500, start_factor=0.001, by_epoch=False),
    dict(type="MultiStepLR", begin=0, end=270, milestones=[170, 200], gamma=0.1, by_epoch=True),
]
train_cfg = dict(by_epoch=True, max_epochs=270, val_interval=10)
val_cfg = dict()
test_cfg = dict()
auto_scale_lr = dict(base_batch_size=256)
