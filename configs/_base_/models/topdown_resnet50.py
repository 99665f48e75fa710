# The top-down estimator on a timm ResNet-50: ImageNet mean/std on RGB input, flip test.
# Heads come from the leaf configs (`model.head`); the other model files override this one.
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
