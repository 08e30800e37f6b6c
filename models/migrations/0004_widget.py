from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_manager_desk')]

    initial = False

    operations = [
        ops.CreateModel(
            name='WidgetSite',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bot', fields.ForeignKeyField('models.Bot', source_field='bot_id', db_constraint=True, to_field='id', related_name='widget_sites', on_delete=OnDelete.CASCADE)),
                ('public_key', fields.CharField(unique=True, max_length=64)),
                ('secret', fields.CharField(max_length=64)),
                ('token_key', fields.CharField(max_length=64)),
                ('allowed_origins', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('title', fields.CharField(default='', max_length=128)),
                ('color', fields.CharField(default='#2563eb', max_length=16)),
                ('text_color', fields.CharField(default='#ffffff', max_length=16)),
                ('greeting', fields.TextField(default='', unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'widget_site', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A website that embeds the chat widget: who may embed it, and how it looks.'},
            bases=['Model'],
        ),
    ]
