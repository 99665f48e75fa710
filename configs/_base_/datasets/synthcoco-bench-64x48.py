# The synthetic accuracy benchmark, 2-D: the demo's kind of SynthCOCO (synthcoco-demo-64x48.py:
# one person per image, no clutter, facing the camera within 45 degrees, upright, 64x48 crops,
# batches of 16 loaded in the main process) but its own seed and a 500-image val split.
# `python tools/compare.py configs/benchmark/synthcoco` trains and compares its head configs.
_base_ = ["synthcoco-demo-64x48.py"]

data_root = "data/synth_coco_bench"
synth_cfg = dict(num_val_images=500, seed=1)  # merged into the demo's

train_dataloader = dict(dataset=dict(data_root=data_root, synth_cfg=synth_cfg))
val_dataloader = dict(dataset=dict(data_root=data_root, synth_cfg=synth_cfg))
test_dataloader = val_dataloader
# the calibration split: the demo's (1000 images of one person), seed 101 (train and val: 1)
calib_dataloader = dict(
    dataset=dict(data_root=data_root + "_calib", synth_cfg=dict(seed=101))  # merged
)
val_evaluator = dict(ann_file=data_root + "/annotations/person_keypoints_val.json")
test_evaluator = val_evaluator
