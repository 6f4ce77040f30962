{# Models write to the schema they name (`metrics`), not `<target schema>_metrics`. #}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ custom_schema_name or target.schema }}
{%- endmacro %}
