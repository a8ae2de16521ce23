"""The insured regions (参保地) the hospital supports: mi_insured_region and the view
mi_v_insured_regions that the HIS and the mini-program backend read (docs/identity.md).

    model      a region, and the checks every way in (config, CSV, 1901) goes through
    csvfile    the CSV a DBA loads (UTF-8 or GBK, a header row), with errors by line and column
    merge      who may change which row: the rules that keep a person's choice from being undone
    storage    the table's queries, and a plan applied in one transaction
    platform   the 1901 dictionary refresh
"""
