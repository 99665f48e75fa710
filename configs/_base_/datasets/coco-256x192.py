# COCO person keypoints, top-down 256x192: train2017, and val2017 on the person detections of
# the RLE paper's evaluation (AP_H 56), batches of 32 per GPU with 4 persistent workers. The
# reference dataset file: the others start from it and override what differs.
data_root = "data/coco/"
input_size = (192, 256)  # (w, h)
num_keypoints = 17

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
# the same loader, in order, on val2017 with the detected person boxes. The published protocol
# (MMPose's and the official RLE's evaluation): with ground-truth boxes (bbox_file=None) they are
# clipped to the image and keypoint-less instances are dropped; OKS-NMS measures the padded crop
# box (input_scale) and the results carry each box (its area sets the COCO (M)/(L) ranges)
val_dataloader = dict(
    train_dataloader,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        train_dataloader["dataset"],
        ann_file="annotations/person_keypoints_val2017.json",
        data_prefix=dict(img="val2017/"),
        test_mode=True,
        bbox_file="person_detection_results/COCO_val2017_detections_AP_H_56_person.json",
        filter_empty=True,
        clip_bbox=True,
        pipeline=val_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(
    type="CocoKeypointMetric",
    ann_file=data_root + "annotations/person_keypoints_val2017.json",
    nms_area="input_scale",
    det_area="bbox",
)
test_evaluator = val_evaluator
