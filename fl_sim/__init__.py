"""fl-sim: federated learning on MNIST with Flower, Keras and Ray."""
