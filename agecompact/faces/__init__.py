"""Face detection and the crop geometry shared by preprocessing and prediction.

One crop function serves both, so a model sees at prediction time exactly the crops it was trained on.
"""
