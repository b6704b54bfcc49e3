"""Video preprocessing into the ttrnn HDF5 frame store (no TensorFlow here): decode, layouts, synthetic videos."""
