"""What is done with poses after they are found: joint angles (``angles``), labelled
datasets (``labels``) and the scoring of landmark models against them (``evaluation``)."""
