# The synthetic accuracy benchmark, 3-D: SynthH36M with 100 frames per subject and camera (its
# own seed; 2000 train images from S1/5/6/7/8, 800 test images from S9/11), 64x64 crops,
# ResNet-10t from scratch, 20 epochs of 125 iterations (about 4 minutes per head on a 2-core
# CPU). Head configs in configs/benchmark/synthh36m/ add `model.head` with num_dims=3.
data_root = "data/synth_h36m_bench"
synth_cfg = dict(frames_per_subject=100, image_size=(128, 128), seed=1)
input_size = (64, 64)
num_keypoints = 17
max_epochs = 20

model = dict(
    type="TopdownPoseEstimator",
    data_preprocessor=dict(
        type="ImgDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
    ),
    backbone=dict(type="TimmBackbone", model_name="resnet10t", pretrained=None),
    test_cfg=dict(flip_test=True, depth_scale=2000.0),
)

train_pipeline = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale", padding=1.0),
    dict(type="RandomFlip", prob=0.5),
    dict(type="RandomBBoxTransform", scale_factor=(0.8, 1.2), rotate_factor=20.0),
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
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(
        type="SynthH36MDataset",
        data_root=data_root,
        split="train",
        layout="npz",
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
        type="SynthH36MDataset",
        data_root=data_root,
        split="test",
        layout="npz",
        synth_cfg=synth_cfg,
        test_mode=True,
        pipeline=val_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="H36MMetric")
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
