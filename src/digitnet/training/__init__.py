"""Training: the config and recipes, augmentation, one epoch, a whole run, run directories and
checkpoints, devices and seeding, several processes."""
