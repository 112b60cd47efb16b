"""radground's MONAI Label app package (imported by MONAI Label under the name ``lib``)."""
