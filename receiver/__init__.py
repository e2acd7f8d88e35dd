"""PyTorch receiver plugin: DeepJSCC decoding and SING restoration."""
