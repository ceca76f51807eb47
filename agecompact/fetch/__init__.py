"""Getting things from elsewhere: released weights, detectors, dataset archives and the demo data.

``sources`` says what each name is and where it lands, ``download`` moves and verifies bytes (resumable,
checksummed, safe tar extraction) and ``fetcher`` turns a name into a file in place (converting Keras
weights into model files on the way). Datasets themselves are read by ``agecompact.data``.
"""
