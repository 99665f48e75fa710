# topdown_resnet18.py for 3-D heads: predicted root-relative depths are in units of 2000 mm (the
# normalisation of the 3-D targets, EncodeKeypoints(num_dims=3)), turned back into mm at test.
_base_ = ["topdown_resnet18.py"]

model = dict(test_cfg=dict(depth_scale=2000.0))
