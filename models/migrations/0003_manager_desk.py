from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0002_knowledge_search')]

    initial = False

    operations = [
        ops.CreateModel(
            name='MessageCopy',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bot', fields.ForeignKeyField('models.Bot', source_field='bot_id', db_constraint=True, to_field='id', related_name='message_copies', on_delete=OnDelete.CASCADE)),
                ('message', fields.ForeignKeyField('models.Message', source_field='message_id', db_constraint=True, to_field='id', related_name='telegram_copies', on_delete=OnDelete.CASCADE)),
                ('chat_id', fields.BigIntField()),
                ('telegram_message_id', fields.BigIntField()),
                ('original', fields.BooleanField(default=False)),
            ],
            options={'table': 'message_copy', 'app': 'models', 'unique_together': (('bot', 'chat_id', 'telegram_message_id', 'message'),), 'indexes': [Index(fields=['message_id', 'chat_id'])], 'pk_attr': 'id', 'table_description': 'One Telegram message that shows a stored message: the original or a copy, in any chat.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Conversation',
            name='first_manager_reply_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Conversation',
            name='handed_off_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Conversation',
            name='manager_card_id',
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name='Conversation',
            name='topic_title',
            field=fields.CharField(default='', max_length=128),
        ),
        ops.AddIndex(
            model_name='Conversation',
            index=Index(fields=['bot_id', 'manager_topic_id']),
        ),
        ops.RemoveField(model_name='Message', name='copies'),
        ops.AddField(
            model_name='OutboxJob',
            name='priority',
            field=fields.SmallIntField(default=0),
        ),
        ops.AddField(
            model_name='OutboxJob',
            name='queue',
            field=fields.CharField(default='', max_length=16),
        ),
        ops.AddIndex(
            model_name='OutboxJob',
            index=Index(fields=['queue', 'status']),
        ),
        ops.AddIndex(
            model_name='OutboxJob',
            index=Index(fields=['lane', 'status']),
        ),
        ops.AddField(
            model_name='User',
            name='online',
            field=fields.BooleanField(default=False),
        ),
    ]
