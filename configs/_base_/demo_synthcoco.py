# `make demo`: an easier SynthCOCO (one large person per image facing the camera within 45
# degrees, upright, no background clutter or occluders), top-down 64x48, ResNet-10t from
# scratch, 15 epochs of 188 iterations of 16 crops: 5-6 minutes of training per head in one
# thread; `make demo` trains two heads at a time (batch 16 learned more per second here than
# batch 32, and two 1-thread processes get ~1.3x the iterations of one 2-thread process).
# Head configs in configs/demo/ add `model.head`. Data loading in the main process
# (num_workers=0): the 64x48 pipeline makes ~3000 crops/s, so worker processes would only
# compete with the model for the 2 cores.
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
num_keypoints = 17
max_epochs = 15

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

# lr: 2e-3, 4e-3 and 6e-3 give the RLE run the same AP within the seed's spread (0.61-0.65;
# benchmarks/demo_lr_sweep.py). fused=True: clipping + the fused CPU AdamW step take 5.8 ms
# instead of 24.0 ms with the per-tensor loop, next to 85 ms of forward + backward
# (benchmarks/bench_optimizer.py).
optim_wrapper = dict(
    optimizer=dict(type="AdamW", lr=4e-3, weight_decay=1e-4, fused=True),
    clip_grad=dict(max_norm=35.0),
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
