# Human3.6M image-based 3-D, protocol 2 (train S1,5,6,7,8 / test S9,11), 256x256, from the
# MMPose npz annotations. COCO's loaders (coco-256x192.py: batches of 32, 4 persistent workers)
# on H36M: the crop keeps the whole box (padding 1.0), no half-body crops, 3-D targets.
_base_ = ["coco-256x192.py"]

data_root = "data/h36m/"
input_size = (256, 256)

train_pipeline = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale", padding=1.0),
    dict(type="RandomFlip", prob=0.5),
    dict(type="RandomBBoxTransform", scale_factor=(0.75, 1.25), rotate_factor=30.0),
    dict(type="TopdownAffine", input_size=input_size),
    dict(type="EncodeKeypoints", num_dims=3),
    dict(type="PackPoseInputs"),
]
# the same steps without the random augmentation
val_pipeline = [t for t in train_pipeline if not t["type"].startswith("Random")]

train_dataloader = dict(
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
# the test subjects (COCO's val dataset replaced: no detected boxes)
val_dataloader = dict(
    dataset=dict(
        train_dataloader["dataset"],
        _delete_=True,
        ann_file="annotation_body3d/fps50/h36m_test.npz",
        split="test",
        test_mode=True,
        pipeline=val_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type="H36MMetric")
test_evaluator = val_evaluator
