"""Training: the networks, the techniques' arithmetic, a variant's seeds trained as one stack
on the device. No files, no MLflow."""
