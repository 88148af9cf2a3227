"""Model files and how they run: the BlazePose assets (``assets``), the model files users add
(``registry``), the ``.tflite`` graph importer (``graph``) and the inference runtimes (``runtime``)."""
