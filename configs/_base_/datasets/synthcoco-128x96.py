# SynthCOCO (generated on first use, in the genuine COCO format), top-down 128x96: the small CPU
# setting. COCO's loaders and pipelines (coco-256x192.py) on the generated set, with milder
# augmentation (no half-body crops, scale 0.8-1.2, rotation up to 20 degrees), 2 workers and
# val batches of 64.
_base_ = ["coco-256x192.py"]

data_root = "data/synth_coco"
synth_cfg = dict(num_train_images=2000, num_val_images=300, image_size=(256, 192), seed=0)
input_size = (96, 128)  # (w, h)

# the base's pipelines with these arguments changed, by transform type
changes = dict(
    RandomBBoxTransform=dict(scale_factor=(0.8, 1.2), rotate_factor=20.0),
    TopdownAffine=dict(input_size=input_size),
)
train_pipeline = [
    dict(t, **changes.get(t.type, {})) for t in _base_.train_pipeline if t.type != "RandomHalfBody"
]
val_pipeline = [dict(t, **changes.get(t.type, {})) for t in _base_.val_pipeline]

train_dataloader = dict(
    num_workers=2,
    dataset=dict(
        _delete_=True,
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
    dataset=dict(train_dataloader["dataset"], split="val", test_mode=True, pipeline=val_pipeline),
)
test_dataloader = val_dataloader
# The calibration split (rle.calibration_run, tools/calibrate.py, compare --calibrate; not an
# mmengine key): a separate generation of the same kind of data with its own seed (100; train
# and val are the stream of seed 0), so neither the training nor the val set changes. Its
# "train" split of 150 images (~300 people) is generated in seconds; num_val_images=1 is the
# generator's minimum. Predicted once, in order, in the main process.
calib_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type="SynthCocoDataset",
        data_root=data_root + "_calib",
        split="train",
        synth_cfg=dict(synth_cfg, num_train_images=150, num_val_images=1, seed=100),
        test_mode=True,
        filter_empty=True,
        pipeline=val_pipeline,
    ),
)
# scored as the measured numbers of the README were (raw-box OKS-NMS, keypoint-extent areas),
# not with the published COCO protocol of coco-256x192.py
val_evaluator = dict(
    ann_file=data_root + "/annotations/person_keypoints_val.json",
    nms_area="bbox",
    det_area="keypoints",
)
test_evaluator = val_evaluator
del changes  # a helper, not a config key
