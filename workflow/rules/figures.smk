# Figures: cheap rules made from saved predictions, histories and tables.


rule figures:
    input:
        [],
