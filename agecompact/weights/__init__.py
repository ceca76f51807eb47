"""Reading and writing weights: the project's model file and the released Keras ``.h5`` files."""
